"""The demo logins created by `manage.py seed_demo` (and printed by `make run`). Never use in production."""

DEMO_PASSWORD = "advisor-demo-2026"
INVESTOR = "investor@demo.advisor"
ADVISOR = "advisor@demo.advisor"
ADMIN = "admin@demo.advisor"
