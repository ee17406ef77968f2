// Command asynq-bench is the Go asynq peer for bench/peers/run.py.
//
// It mirrors asynq's own BenchmarkEndToEndSimple (benchmark_test.go in hibiken/asynq v0.26.0):
// tasks "task<i>" with payload {"data": i} enqueued one Client.Enqueue call each, then a Server
// with Concurrency 10 started on that backlog and a handler that only counts. The two halves
// are separate roles so that the orchestrator treats this peer like the Python ones. Timing is
// done here, in-process, exactly where the upstream benchmark starts and stops its timer
// (enqueue: around the loop; process: from srv.Start to the last handler call). The result is
// one "BENCH-RESULT {json}" line on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

const version = "v0.26.0" // keep in step with go.mod

func makeTask(n int) *asynq.Task {
	b, err := json.Marshal(map[string]int{"data": n})
	if err != nil {
		panic(err)
	}
	return asynq.NewTask(fmt.Sprintf("task%d", n), b)
}

func emit(fields map[string]any) {
	fields["version"] = version
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	fmt.Printf("BENCH-RESULT %s\n", b)
}

func produce(opt asynq.RedisClientOpt, n int) {
	client := asynq.NewClient(opt)
	defer client.Close()
	if err := client.Ping(); err != nil { // connect before the clock starts
		log.Fatalf("ping: %v", err)
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := client.Enqueue(makeTask(i)); err != nil {
			log.Fatalf("could not enqueue a task: %v", err)
		}
	}
	secs := time.Since(t0).Seconds()
	emit(map[string]any{"role": "produce", "tasks": n, "rate": float64(n) / secs, "config": "Client.Enqueue each"})
}

func work(opt asynq.RedisClientOpt, n, concurrency int) {
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: concurrency,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration {
			return time.Second
		},
		LogLevel: asynq.WarnLevel,
	})
	var count atomic.Int64
	var first atomic.Int64
	done := make(chan time.Time, 1)
	var t0 time.Time // set before srv.Start, so before any handler runs
	handler := func(ctx context.Context, t *asynq.Task) error {
		c := count.Add(1)
		if c == 1 {
			first.Store(int64(time.Since(t0)))
		}
		if c == int64(n) {
			done <- time.Now()
		}
		return nil
	}
	t0 = time.Now()
	if err := srv.Start(asynq.HandlerFunc(handler)); err != nil {
		log.Fatalf("start: %v", err)
	}
	end := <-done
	secs := end.Sub(t0).Seconds()
	emit(map[string]any{
		"role":     "work",
		"tasks":    n,
		"rate":     float64(n) / secs,
		"first_ms": float64(first.Load()) / 1e6,
		"config":   fmt.Sprintf("1 process, Server Concurrency=%d", concurrency),
	})
	os.Exit(0) // like the Python peers: shutdown is not part of the measurement
}

func main() {
	role := flag.String("role", "", "produce or work")
	addr := flag.String("addr", "127.0.0.1:6379", "Redis host:port")
	db := flag.Int("db", 0, "Redis database")
	n := flag.Int("tasks", 10000, "number of tasks")
	concurrency := flag.Int("concurrency", 10, "server concurrency (upstream benchmark: 10)")
	flag.Parse()
	opt := asynq.RedisClientOpt{Addr: *addr, DB: *db}
	switch *role {
	case "produce":
		produce(opt, *n)
	case "work":
		work(opt, *n, *concurrency)
	default:
		log.Fatalf("-role must be produce or work, not %q", *role)
	}
}
