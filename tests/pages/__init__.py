"""Page tests (a package, so their names may repeat those in tests/, e.g. test_budget.py)."""
