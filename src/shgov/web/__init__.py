"""The web shell: base layout, navigation, static assets, error pages and shared templates."""
