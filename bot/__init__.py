"""Collections reminder bot: gateway, worker and the domain code they share."""
