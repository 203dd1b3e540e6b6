"""Figures drawn from a results folder's tables (Matplotlib's Figure API)."""
