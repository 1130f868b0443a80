"""The named colour of a garment: its training data, model, variants and contact sheets."""
