"""HTTP routes: thin handlers that validate, call a service and shape the response."""
