"""The service's endpoints, one router per audience; serve/app.py includes them.

    trucks.py    what collection trucks call: upload, detect, list, fetch (API key)
    health.py    liveness, readiness and Prometheus metrics (orchestrator, monitoring)
    docs.py      the OpenAPI pages, with their JavaScript and CSS served by the app
"""
