"""The review web page (``agentcow review``) and the reviewer's JSON routes for FastAPI apps.

Needs the ``web`` extra (FastAPI, uvicorn)."""

from agentcow.web.app import create_review_app
from agentcow.web.routes import reviewer_router

__all__ = ["create_review_app", "reviewer_router"]
