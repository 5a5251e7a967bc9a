"""Behaviour: sessions, usage scenarios and user feedback, built from clean requests and messages."""
