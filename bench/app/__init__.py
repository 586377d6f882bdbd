"""The bench's Django app: the tasks djq workers run during the benchmark."""
