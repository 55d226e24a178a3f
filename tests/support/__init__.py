"""Fixtures and helpers of the test suite: no tests here."""
