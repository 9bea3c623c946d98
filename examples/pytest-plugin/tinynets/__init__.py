"""Three small networks whose deploy forms the etds pytest plugin checks on every run."""
