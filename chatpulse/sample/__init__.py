"""Sample data: a realistic, seeded stream of requests, conversations and feedback for the demo and tests."""
