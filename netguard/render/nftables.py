"""nftables target (being written)."""
