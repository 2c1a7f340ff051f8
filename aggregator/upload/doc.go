// Package upload sends the sealed .gpbz bundles of the aggregator's data
// directory to the collection server over HTTPS (the online mode) and
// deletes each one once the server has acknowledged it.
//
// The data directory is the queue: a sealed bundle not yet acknowledged is
// a file in it, so an Uploader started after a restart carries on where
// the last one stopped, and the bundle writer's disk quota keeps the queue
// bounded while the link is down. Critical bundles go first, then the
// oldest; one upload at a time. Failures are retried with exponential
// backoff and full jitter. PROTOCOL.md describes the requests, the
// acknowledgement and the retry rules.
//
// In offline mode the aggregator creates no Uploader, so no bundle leaves
// the device.
package upload
