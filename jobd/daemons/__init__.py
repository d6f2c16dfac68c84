"""jobd.daemons."""
