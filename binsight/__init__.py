"""binsight's user-facing command line (binsight/cli.py); the work lives in pipeline/ and serve/."""
