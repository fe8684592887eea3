"""一网通办: applications and cases, run through their BPMN process to unified issuance."""
