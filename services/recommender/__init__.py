"""k-NN over the vector index with filters and re-ranking (issue #7)."""
