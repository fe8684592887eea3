"""一网通办: service items, 一件事 bundles, merged forms, prefill and pre-check."""
