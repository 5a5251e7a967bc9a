"""Daily HTML report: charts and page rendering for ChatPulse."""
