"""Interchangeable inference backends behind one interface."""
