"""Faces: what a person looks at (plots, ladder diagrams, the example captures for students)."""
