"""Delivery of kept outputs to ``deliver`` targets, separate from execution."""
