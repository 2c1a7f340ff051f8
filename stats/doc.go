// Package stats collects counts (events received, footprints created and
// deduplicated, records emitted, drops by reason) per component, access
// type and statistic type into fixed windows, and turns each window into
// an xdrv1.Statistics record: the periodic statistics users know from the
// old tool, with the device identity, window end, window length and
// whether a critical event was hit.
//
// Agent counts arrive as cumulative reports (xdrv1.AgentCounters); the
// Collector turns them into per-window differences, per agent instance, so
// a lost or repeated report neither loses nor doubles a count.
package stats
