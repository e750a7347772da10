package bench

import (
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Sizes, chosen so that the whole run stays within a few minutes on 2 cores.
const (
	smallNS, smallCount = "list-1k", 1000
	largeNS, largeCount = "list-10k", 10000
)

// BenchmarkCreate creates Rollouts with 1, 8 and 32 clients in parallel:
// latency of each POST, and Rollouts stored per second. Every create also
// takes its workload's claim in etcd (one Rollout per workload).
func BenchmarkCreate(b *testing.B) {
	for _, tc := range []struct{ workers, count int }{{1, 300}, {8, 1000}, {32, 1000}} {
		b.Run(fmt.Sprintf("workers=%d", tc.workers), func(b *testing.B) {
			c, ctx := benchServer(b), benchContext(b)
			var latencies []time.Duration
			var elapsed time.Duration
			b.ResetTimer()
			for n := range b.N {
				ns := fmt.Sprintf("create-w%d-%d", tc.workers, n)
				l, e, err := createMany(ctx, c, ns, "ro", tc.count, tc.workers)
				if err != nil {
					b.Fatal(err)
				}
				latencies, elapsed = append(latencies, l...), elapsed+e
			}
			b.StopTimer()
			report(b, latencies, len(latencies), elapsed, "objects")
		})
	}
}

// BenchmarkGet reads random Rollouts of a namespace of 1k, with 1 and 8
// clients in parallel.
func BenchmarkGet(b *testing.B) {
	for _, tc := range []struct{ workers, gets int }{{1, 1000}, {8, 4000}} {
		b.Run(fmt.Sprintf("workers=%d", tc.workers), func(b *testing.B) {
			c, ctx := benchServer(b), benchContext(b)
			populate(ctx, b, c, smallNS, smallCount)
			rollouts := c.RolloutV1beta1().Rollouts(smallNS)
			b.ResetTimer()
			var latencies []time.Duration
			var elapsed time.Duration
			for range b.N {
				per := make([][]time.Duration, tc.workers)
				errs := make(chan error, tc.workers)
				var wg sync.WaitGroup
				start := time.Now()
				for w := range tc.workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rnd := rand.New(rand.NewSource(int64(w)))
						for range tc.gets / tc.workers {
							name := fmt.Sprintf("ro-%05d", rnd.Intn(smallCount))
							t0 := time.Now()
							if _, err := rollouts.Get(ctx, name, metav1.GetOptions{}); err != nil {
								errs <- err
								return
							}
							per[w] = append(per[w], time.Since(t0))
						}
					}()
				}
				wg.Wait()
				elapsed += time.Since(start)
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
				for _, l := range per {
					latencies = append(latencies, l...)
				}
			}
			b.StopTimer()
			report(b, latencies, len(latencies), elapsed, "objects")
		})
	}
}

// BenchmarkList lists a namespace of 1k and one of 10k Rollouts, in one
// response and in pages of 500 (the latency is that of the whole list,
// every page). Lists are consistent reads (no resourceVersion), served from
// the watch cache once it has caught up with etcd.
func BenchmarkList(b *testing.B) {
	for _, size := range []struct {
		ns           string
		count, lists int
	}{{smallNS, smallCount, 30}, {largeNS, largeCount, 6}} {
		for _, limit := range []int64{0, 500} {
			name := fmt.Sprintf("objects=%dk/unpaginated", size.count/1000)
			if limit > 0 {
				name = fmt.Sprintf("objects=%dk/limit=%d", size.count/1000, limit)
			}
			b.Run(name, func(b *testing.B) {
				c, ctx := benchServer(b), benchContext(b)
				populate(ctx, b, c, size.ns, size.count)
				rollouts := c.RolloutV1beta1().Rollouts(size.ns)
				b.ResetTimer()
				var latencies []time.Duration
				var elapsed time.Duration
				items := 0
				for range b.N {
					for range size.lists {
						t0 := time.Now()
						got := 0
						opts := metav1.ListOptions{Limit: limit}
						for {
							list, err := rollouts.List(ctx, opts)
							if err != nil {
								b.Fatal(err)
							}
							got += len(list.Items)
							if list.Continue == "" {
								break
							}
							opts.Continue = list.Continue
						}
						d := time.Since(t0)
						if got != size.count {
							b.Fatalf("listed %d Rollouts, want %d", got, size.count)
						}
						latencies, elapsed, items = append(latencies, d), elapsed+d, items+got
					}
				}
				b.StopTimer()
				report(b, latencies, items, elapsed, "objects")
			})
		}
	}
}

// BenchmarkWatchLatency measures how long a change takes to reach a watcher:
// from just before the update is sent to the MODIFIED event's arrival. The
// updates are sequential (the next is sent once the last event arrived), to
// a namespace of 100 Rollouts that one client watches.
func BenchmarkWatchLatency(b *testing.B) {
	const ns, objects, updates = "watch", 100, 500
	c, ctx := benchServer(b), benchContext(b)
	populate(ctx, b, c, ns, objects)
	rollouts := c.RolloutV1beta1().Rollouts(ns)

	list, err := rollouts.List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := rollouts.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()

	// The watcher reports the sequence number of each update it sees.
	seen := make(chan int, 16)
	go func() {
		defer close(seen)
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			if r, ok := ev.Object.(*v1beta1.Rollout); ok {
				if seq, err := strconv.Atoi(r.Annotations["bench/seq"]); err == nil {
					seen <- seq
				}
			}
		}
	}()

	items := list.Items
	b.ResetTimer()
	var latencies []time.Duration
	var elapsed time.Duration
	seq := 0
	for range b.N {
		for i := range updates {
			r := &items[i%len(items)]
			seq++
			if r.Annotations == nil {
				r.Annotations = map[string]string{}
			}
			r.Annotations["bench/seq"] = strconv.Itoa(seq)
			t0 := time.Now()
			updated, err := rollouts.Update(ctx, r, metav1.UpdateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			*r = *updated
			for got := -1; got != seq; {
				select {
				case s, ok := <-seen:
					if !ok {
						b.Fatal("watch closed")
					}
					got = s
				case <-time.After(10 * time.Second):
					b.Fatalf("no event for update %d within 10s", seq)
				}
			}
			d := time.Since(t0)
			latencies, elapsed = append(latencies, d), elapsed+d
		}
	}
	b.StopTimer()
	report(b, latencies, len(latencies), elapsed, "events")
}
