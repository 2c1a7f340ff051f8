// Package counters keeps the agent's own cumulative counts (events sent,
// drops by reason, partial enrichments), keyed by statistic type and access
// type, and turns them into the EventInfo entries the agent reports to the
// aggregator.
package counters
