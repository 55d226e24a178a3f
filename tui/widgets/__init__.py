"""Widgets shared by panels and screens."""
