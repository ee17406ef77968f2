// Command asynq-bench is the Go asynq peer for bench/peers/run.py.
//
// It mirrors asynq's own end-to-end benchmarks (benchmark_test.go in hibiken/asynq v0.26.0):
// tasks "task<i>" with payload {"data": i} enqueued one Client.Enqueue call each, then a Server
// with Concurrency 10 started on that backlog and a handler that only counts. -scenario picks
// the benchmark:
//
//   - simple: BenchmarkEndToEndSimple, every task on "default", ready now;
//   - mixed: BenchmarkEndToEnd, the first half ready now, the second half ProcessIn(1s); tasks
//     whose index is divisible by 100 fail their first attempt (GetRetryCount == 0) and are
//     retried after 1 s (RetryDelayFunc);
//   - weighted: BenchmarkEndToEndMultipleQueues, a third each on "high", "default" and "low",
//     served with Queues {high: 6, default: 3, low: 1}.
//
// Unlike upstream, the task index runs over all tasks (the mixed scenario's scheduled half does
// not reuse the indices of the first half) so that every peer fails the same 1 %. The two halves
// are separate roles so that the orchestrator treats this peer like the Python ones. Timing is
// done here, in-process, exactly where the upstream benchmark starts and stops its timer
// (enqueue: around the loop; process: from srv.Start to the last successful handler call). The
// result is one "BENCH-RESULT {json}" line on stdout.
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

// plan returns the enqueue options of task i of n in the scenario.
func plan(scenario string, i, n int) []asynq.Option {
	switch scenario {
	case "mixed":
		if i >= n/2 {
			return []asynq.Option{asynq.ProcessIn(time.Second)}
		}
	case "weighted":
		third := (n + 2) / 3
		return []asynq.Option{asynq.Queue([]string{"high", "default", "low"}[i/third])}
	}
	return nil
}

func produce(opt asynq.RedisClientOpt, n int, scenario string) {
	client := asynq.NewClient(opt)
	defer client.Close()
	if err := client.Ping(); err != nil { // connect before the clock starts
		log.Fatalf("ping: %v", err)
	}
	tasks := make([]*asynq.Task, n)
	opts := make([][]asynq.Option, n)
	for i := range tasks {
		tasks[i], opts[i] = makeTask(i), plan(scenario, i, n)
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := client.Enqueue(tasks[i], opts[i]...); err != nil {
			log.Fatalf("could not enqueue a task: %v", err)
		}
	}
	secs := time.Since(t0).Seconds()
	emit(map[string]any{"role": "produce", "tasks": n, "rate": float64(n) / secs, "config": "Client.Enqueue each"})
}

func work(opt asynq.RedisClientOpt, n, concurrency int, scenario string) {
	var queues map[string]int
	config := fmt.Sprintf("1 process, Server Concurrency=%d", concurrency)
	switch scenario {
	case "weighted":
		queues = map[string]int{"high": 6, "default": 3, "low": 1}
		config += ", Queues high:6 default:3 low:1"
	case "mixed":
		config += ", RetryDelayFunc 1 s"
	}
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: concurrency,
		Queues:      queues,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration {
			return time.Second
		},
		LogLevel: asynq.WarnLevel,
	})
	var count, first, failures atomic.Int64
	done := make(chan time.Time, 1)
	var t0 time.Time // set before srv.Start, so before any handler runs
	handler := func(ctx context.Context, t *asynq.Task) error {
		if scenario == "mixed" {
			var p map[string]int
			if err := json.Unmarshal(t.Payload(), &p); err != nil {
				return fmt.Errorf("bad payload: %w", err)
			}
			retried, _ := asynq.GetRetryCount(ctx)
			if retried == 0 && p["data"]%100 == 0 { // fail 1 % of tasks on the first attempt
				failures.Add(1)
				return fmt.Errorf("planned failure")
			}
		}
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
		"scenario": scenario,
		"failures": failures.Load(),
		"tasks":    n,
		"rate":     float64(n) / secs,
		"first_ms": float64(first.Load()) / 1e6,
		"config":   config,
	})
	os.Exit(0) // like the Python peers: shutdown is not part of the measurement
}

func main() {
	role := flag.String("role", "", "produce or work")
	addr := flag.String("addr", "127.0.0.1:6379", "Redis host:port")
	db := flag.Int("db", 0, "Redis database")
	n := flag.Int("tasks", 10000, "number of tasks")
	concurrency := flag.Int("concurrency", 10, "server concurrency (upstream benchmark: 10)")
	scenario := flag.String("scenario", "simple", "simple, mixed or weighted")
	flag.Parse()
	if *scenario != "simple" && *scenario != "mixed" && *scenario != "weighted" {
		log.Fatalf("-scenario must be simple, mixed or weighted, not %q", *scenario)
	}
	opt := asynq.RedisClientOpt{Addr: *addr, DB: *db}
	switch *role {
	case "produce":
		produce(opt, *n, *scenario)
	case "work":
		work(opt, *n, *concurrency, *scenario)
	default:
		log.Fatalf("-role must be produce or work, not %q", *role)
	}
}
