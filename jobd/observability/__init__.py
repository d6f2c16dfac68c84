"""jobd.observability."""
