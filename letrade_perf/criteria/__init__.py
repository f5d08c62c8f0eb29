"""Threshold grammar and live/final criteria evaluation."""
