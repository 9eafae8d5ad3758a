"""The demo storefront and the ops page that `recs serve` shows beside the API."""
