"""jobd.ops."""
