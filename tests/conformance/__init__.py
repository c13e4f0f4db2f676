"""One behaviour suite run against every changer and tape drive implementation (STYLE.md habit 5)."""
