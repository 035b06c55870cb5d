"""Source bilans."""
