"""providers/encord package."""
