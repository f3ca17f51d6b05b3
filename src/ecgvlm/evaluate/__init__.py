"""Scoring: ECGBench-compatible and strict metrics, report judges, tables, the CNN baseline."""
