"""Serving: the recommendations API as a Lambda handler and a local server (issue 5)."""
