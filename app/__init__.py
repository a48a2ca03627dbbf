"""FastNPC HTTP service: Quart-Trio routes and the domain services they drive."""
