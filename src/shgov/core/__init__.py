"""Shared plumbing used by every context: settings, storage, events, errors, i18n, logging."""
