package daemon

import (
	"testing"
	"time"
)

func ready(q *recordQueue) bool {
	select {
	case <-q.Ready():
		return true
	default:
		return false
	}
}

// TestRecordQueueSignal checks that records wake the writer on Signal, not
// one by one, and that a full queue wakes it without Signal.
func TestRecordQueueSignal(t *testing.T) {
	q := newRecordQueue(3)
	if q.Signal(); ready(q) {
		t.Error("Signal of an empty queue woke the writer")
	}
	q.Put(queued{})
	q.Put(queued{})
	if ready(q) {
		t.Error("Put woke the writer before Signal")
	}
	q.Signal()
	if !ready(q) {
		t.Fatal("Signal did not wake the writer")
	}
	if n := len(q.Take()); n != 2 {
		t.Errorf("took %d records, want 2", n)
	}
	// A producer that fills the queue must not wait for the Signal that
	// only comes after its burst.
	done := make(chan struct{})
	go func() {
		for range 5 {
			q.Put(queued{})
		}
		q.Signal()
		close(done)
	}()
	taken := 0
	for taken < 5 {
		select {
		case <-q.Ready():
			taken += len(q.Take())
		case <-time.After(10 * time.Second):
			t.Fatalf("writer not woken by a full queue (%d of 5 taken)", taken)
		}
	}
	<-done
}
