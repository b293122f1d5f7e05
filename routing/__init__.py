"""Who handles a call: meldkamer directory, location resolvers and the routing decision."""
