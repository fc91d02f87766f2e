"""Small helpers shared by every concern: counts in words, rate limits, tasks, files."""
