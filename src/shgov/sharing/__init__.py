"""1515 authorised sharing: requests, grants, the audited gateway."""
