"""Reliability under load, faults and bad input (issue 6): stress, faults, fuzzing, catalogue."""
