// asynqctl drives the real Go asynq (v0.26.0) for ferroq's interop tests: it acts as a client,
// a server, or an inspector against one Redis, and prints what it did or saw as JSON.
//
//	asynqctl enqueue -redis URL -type T [options]      one TaskInfo
//	asynqctl serve   -redis URL -queues q=1,r=2 ...    one JSON line per handled task
//	asynqctl inspect -redis URL OP [ARGS]              the Inspector's answer
//	asynqctl schedule -redis URL -spec S -type T ...   a Go Scheduler with one entry
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: asynqctl enqueue|serve|inspect [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "enqueue":
		err = enqueue(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "inspect":
		err = inspect(os.Args[2:])
	case "schedule":
		err = schedule(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	emit(map[string]any{"error": err.Error()})
	os.Exit(1)
}

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

func emit(v any) {
	outMu.Lock()
	defer outMu.Unlock()
	if err := out.Encode(v); err != nil {
		panic(err)
	}
}

// redisOpt reads a redis:// URL, or ferroq's redis+cluster://host:port[,host:port...] as a
// RedisClusterClientOpt (asynq's URI parser knows no cluster form).
func redisOpt(uri string) asynq.RedisConnOpt {
	if rest, ok := strings.CutPrefix(uri, "redis+cluster://"); ok {
		return asynq.RedisClusterClientOpt{Addrs: strings.Split(strings.TrimSuffix(rest, "/"), ",")}
	}
	opt, err := asynq.ParseRedisURI(uri)
	if err != nil {
		fail(fmt.Errorf("bad redis URL: %w", err))
	}
	return opt
}

type headerFlags map[string]string

func (h headerFlags) String() string { return fmt.Sprint(map[string]string(h)) }
func (h headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("header %q: want k=v", s)
	}
	h[k] = v
	return nil
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func taskInfo(ti *asynq.TaskInfo) map[string]any {
	headers := ti.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return map[string]any{
		"id":              ti.ID,
		"queue":           ti.Queue,
		"type":            ti.Type,
		"payload_hex":     hex.EncodeToString(ti.Payload),
		"headers":         headers,
		"state":           ti.State.String(),
		"max_retry":       ti.MaxRetry,
		"retried":         ti.Retried,
		"last_err":        ti.LastErr,
		"last_failed_at":  unix(ti.LastFailedAt),
		"timeout":         int64(ti.Timeout / time.Second),
		"deadline":        unix(ti.Deadline),
		"group":           ti.Group,
		"next_process_at": unix(ti.NextProcessAt),
		"is_orphaned":     ti.IsOrphaned,
		"retention":       int64(ti.Retention / time.Second),
		"completed_at":    unix(ti.CompletedAt),
		"result_hex":      hex.EncodeToString(ti.Result),
	}
}

func enqueue(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ExitOnError)
	uri := fs.String("redis", "", "Redis URL")
	typ := fs.String("type", "", "task type")
	payloadHex := fs.String("payload-hex", "", "payload as hex (empty: a nil payload unless -empty-payload)")
	emptyPayload := fs.Bool("empty-payload", false, "a non-nil empty payload ([]byte{})")
	queue := fs.String("queue", "", "Queue option")
	maxRetry := fs.Int("max-retry", -1, "MaxRetry option")
	timeout := fs.Duration("timeout", 0, "Timeout option")
	deadline := fs.Int64("deadline", 0, "Deadline option, Unix seconds")
	unique := fs.Duration("unique", 0, "Unique option")
	processIn := fs.Duration("process-in", 0, "ProcessIn option")
	processAt := fs.Int64("process-at", 0, "ProcessAt option, Unix seconds")
	taskID := fs.String("task-id", "", "TaskID option")
	retention := fs.Duration("retention", 0, "Retention option")
	group := fs.String("group", "", "Group option")
	headers := headerFlags{}
	fs.Var(headers, "header", "k=v header, repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var payload []byte
	if *payloadHex != "" {
		p, err := hex.DecodeString(*payloadHex)
		if err != nil {
			return err
		}
		payload = p
	} else if *emptyPayload {
		payload = []byte{}
	}
	var opts []asynq.Option
	if *queue != "" {
		opts = append(opts, asynq.Queue(*queue))
	}
	if *maxRetry >= 0 {
		opts = append(opts, asynq.MaxRetry(*maxRetry))
	}
	if *timeout > 0 {
		opts = append(opts, asynq.Timeout(*timeout))
	}
	if *deadline > 0 {
		opts = append(opts, asynq.Deadline(time.Unix(*deadline, 0)))
	}
	if *unique > 0 {
		opts = append(opts, asynq.Unique(*unique))
	}
	if *processIn > 0 {
		opts = append(opts, asynq.ProcessIn(*processIn))
	}
	if *processAt > 0 {
		opts = append(opts, asynq.ProcessAt(time.Unix(*processAt, 0)))
	}
	if *taskID != "" {
		opts = append(opts, asynq.TaskID(*taskID))
	}
	if *retention > 0 {
		opts = append(opts, asynq.Retention(*retention))
	}
	if *group != "" {
		opts = append(opts, asynq.Group(*group))
	}
	var task *asynq.Task
	if len(headers) > 0 {
		task = asynq.NewTaskWithHeaders(*typ, payload, headers, opts...)
	} else {
		task = asynq.NewTask(*typ, payload, opts...)
	}
	c := asynq.NewClient(redisOpt(*uri))
	defer c.Close()
	ti, err := c.Enqueue(task)
	if err != nil {
		return err
	}
	emit(taskInfo(ti))
	return nil
}

// handle runs the behaviour named by the task type's first segment:
// ok, fail, skip, revoke, result (writes the payload as result), block (until cancelled),
// sleep (for the number of milliseconds in the payload).
func handle(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	deadline, _ := ctx.Deadline()
	headers := t.Headers()
	if headers == nil {
		headers = map[string]string{}
	}
	emit(map[string]any{
		"event": "handled", "id": id, "type": t.Type(), "payload_hex": hex.EncodeToString(t.Payload()),
		"headers": headers, "queue": queue, "retry_count": retried, "max_retry": maxRetry,
		"deadline": deadline.Unix(),
	})
	kind, _, _ := strings.Cut(t.Type(), ":")
	switch kind {
	case "ok":
		return nil
	case "fail":
		return errors.New("go handler failed")
	case "skip":
		return fmt.Errorf("go gives up: %w", asynq.SkipRetry)
	case "revoke":
		return fmt.Errorf("go revokes: %w", asynq.RevokeTask)
	case "result":
		_, err := t.ResultWriter().Write(t.Payload())
		return err
	case "block":
		<-ctx.Done()
		return ctx.Err()
	case "sleep":
		ms, err := strconv.Atoi(string(t.Payload()))
		if err != nil {
			return err
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("asynqctl: no behaviour for %q", t.Type())
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	uri := fs.String("redis", "", "Redis URL")
	queues := fs.String("queues", "default=1", "name=priority,...")
	concurrency := fs.Int("concurrency", 4, "Concurrency")
	strict := fs.Bool("strict", false, "StrictPriority")
	retryDelay := fs.Duration("retry-delay", time.Second, "delay before every retry")
	forDur := fs.Duration("for", 0, "stop after this long (0: until SIGTERM)")
	checkInterval := fs.Duration("check-interval", 100*time.Millisecond, "TaskCheckInterval")
	delayedInterval := fs.Duration("delayed-interval", time.Second, "DelayedTaskCheckInterval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	qs := map[string]int{}
	for _, spec := range strings.Split(*queues, ",") {
		name, prio, _ := strings.Cut(spec, "=")
		p, err := strconv.Atoi(prio)
		if err != nil {
			return fmt.Errorf("queue %q: %w", spec, err)
		}
		qs[name] = p
	}
	srv := asynq.NewServer(redisOpt(*uri), asynq.Config{
		Concurrency:              *concurrency,
		Queues:                   qs,
		StrictPriority:           *strict,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return *retryDelay },
		TaskCheckInterval:        *checkInterval,
		DelayedTaskCheckInterval: *delayedInterval,
		ShutdownTimeout:          3 * time.Second,
		LogLevel:                 asynq.WarnLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(handle)); err != nil {
		return err
	}
	emit(map[string]any{"event": "started"})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if *forDur > 0 {
		select {
		case <-sig:
		case <-time.After(*forDur):
		}
	} else {
		<-sig
	}
	srv.Shutdown()
	emit(map[string]any{"event": "stopped"})
	return nil
}

func serverInfo(s *asynq.ServerInfo) map[string]any {
	workers := []map[string]any{}
	for _, w := range s.ActiveWorkers {
		workers = append(workers, map[string]any{
			"task_id": w.TaskID, "task_type": w.TaskType, "payload_hex": hex.EncodeToString(w.TaskPayload),
			"queue": w.Queue, "started": unix(w.Started), "deadline": unix(w.Deadline),
		})
	}
	return map[string]any{
		"id": s.ID, "host": s.Host, "pid": s.PID, "concurrency": s.Concurrency, "queues": s.Queues,
		"strict_priority": s.StrictPriority, "started": unix(s.Started), "status": s.Status,
		"active_workers": workers,
	}
}

func inspect(args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ExitOnError)
	uri := fs.String("redis", "", "Redis URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return errors.New("inspect: missing operation")
	}
	arg := func(i int) string {
		if len(rest) <= i {
			fail(fmt.Errorf("inspect %s: missing argument %d", rest[0], i))
		}
		return rest[i]
	}
	in := asynq.NewInspector(redisOpt(*uri))
	defer in.Close()
	switch op := rest[0]; op {
	case "queues":
		qs, err := in.Queues()
		if err != nil {
			return err
		}
		sort.Strings(qs)
		emit(qs)
	case "queue":
		qi, err := in.GetQueueInfo(arg(1))
		if err != nil {
			return err
		}
		emit(map[string]any{
			"queue": qi.Queue, "size": qi.Size, "groups": qi.Groups, "pending": qi.Pending,
			"active": qi.Active, "scheduled": qi.Scheduled, "retry": qi.Retry, "archived": qi.Archived,
			"completed": qi.Completed, "aggregating": qi.Aggregating, "processed": qi.Processed,
			"failed": qi.Failed, "processed_total": qi.ProcessedTotal, "failed_total": qi.FailedTotal,
			"paused": qi.Paused, "latency_ms": qi.Latency.Milliseconds(), "memory_usage": qi.MemoryUsage,
		})
	case "servers":
		ss, err := in.Servers()
		if err != nil {
			return err
		}
		list := []map[string]any{}
		for _, s := range ss {
			list = append(list, serverInfo(s))
		}
		emit(list)
	case "list":
		q, state := arg(1), arg(2)
		var tasks []*asynq.TaskInfo
		var err error
		page := asynq.PageSize(1000)
		switch state {
		case "pending":
			tasks, err = in.ListPendingTasks(q, page)
		case "active":
			tasks, err = in.ListActiveTasks(q, page)
		case "scheduled":
			tasks, err = in.ListScheduledTasks(q, page)
		case "retry":
			tasks, err = in.ListRetryTasks(q, page)
		case "archived":
			tasks, err = in.ListArchivedTasks(q, page)
		case "completed":
			tasks, err = in.ListCompletedTasks(q, page)
		case "aggregating":
			tasks, err = in.ListAggregatingTasks(q, arg(3), page)
		default:
			return fmt.Errorf("unknown state %q", state)
		}
		if err != nil {
			return err
		}
		list := []map[string]any{}
		for _, t := range tasks {
			list = append(list, taskInfo(t))
		}
		emit(list)
	case "task":
		ti, err := in.GetTaskInfo(arg(1), arg(2))
		if err != nil {
			return err
		}
		emit(taskInfo(ti))
	case "cron":
		entries, err := in.SchedulerEntries()
		if err != nil {
			return err
		}
		list := []map[string]any{}
		for _, e := range entries {
			opts := []string{}
			for _, o := range e.Opts {
				opts = append(opts, o.String())
			}
			list = append(list, map[string]any{
				"id": e.ID, "spec": e.Spec, "type": e.Task.Type(),
				"payload_hex": hex.EncodeToString(e.Task.Payload()), "opts": opts,
				"next": unix(e.Next), "prev": unix(e.Prev),
			})
		}
		emit(list)
	case "history":
		events, err := in.ListSchedulerEnqueueEvents(arg(1), asynq.PageSize(1000))
		if err != nil {
			return err
		}
		list := []map[string]any{}
		for _, ev := range events {
			list = append(list, map[string]any{"task_id": ev.TaskID, "enqueued_at": unix(ev.EnqueuedAt)})
		}
		emit(list)
	case "run":
		return done(in.RunTask(arg(1), arg(2)))
	case "archive":
		return done(in.ArchiveTask(arg(1), arg(2)))
	case "delete":
		return done(in.DeleteTask(arg(1), arg(2)))
	case "pause":
		return done(in.PauseQueue(arg(1)))
	case "unpause":
		return done(in.UnpauseQueue(arg(1)))
	case "cancel":
		return done(in.CancelProcessing(arg(1)))
	default:
		return fmt.Errorf("unknown inspect operation %q", op)
	}
	return nil
}

func done(err error) error {
	if err != nil {
		return err
	}
	emit(map[string]any{"ok": true})
	return nil
}

func schedule(args []string) error {
	fs := flag.NewFlagSet("schedule", flag.ExitOnError)
	uri := fs.String("redis", "", "Redis URL")
	spec := fs.String("spec", "@every 1s", "cron spec")
	typ := fs.String("type", "ok:go-periodic", "task type")
	queue := fs.String("queue", "default", "Queue option")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := asynq.NewScheduler(redisOpt(*uri), &asynq.SchedulerOpts{
		LogLevel:          asynq.WarnLevel,
		HeartbeatInterval: time.Second,
	})
	id, err := s.Register(*spec, asynq.NewTask(*typ, nil), asynq.Queue(*queue))
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	emit(map[string]any{"event": "started", "entry_id": id})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	return nil
}
