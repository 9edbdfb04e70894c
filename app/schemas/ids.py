"""Bounds of row ids: the database's INT; a larger number cannot name a row."""

MAX_ROW_ID = 2**31 - 1
