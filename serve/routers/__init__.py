"""The service's endpoints, one router per audience; serve/app.py includes them.

    trucks.py        what collection trucks call: upload, detect, list, fetch (API key)
    health.py        liveness, readiness and Prometheus metrics (orchestrator, monitoring)
    docs.py          the API's documentation pages, their JavaScript and CSS served by the app
    login.py         logging in and out of the people's pages (session cookie, CSRF)
    reviewers.py     the review queue and decisions (reviewers)
    admin.py         account management (admins)
    labelstudio.py   Label Studio's ML backend (Basic Auth)
"""
