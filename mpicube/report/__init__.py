"""What a cube job tells its user: the run log, the check, the logbook summary, the status."""
