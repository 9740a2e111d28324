// Command ferretdb-test-server runs FerretDB (a MongoDB wire-protocol server)
// with its SQLite backend, for the gateway's integration tests.
//
// It embeds github.com/FerretDB/FerretDB/ferretdb rather than building
// FerretDB's own cmd/ferretdb: that binary panics at start when built with
// `go install` ("Invalid build/version/version.txt"), while the embeddable
// package skips the version check when FerretDB is not the main module.
//
//	ferretdb-test-server --listen 127.0.0.1:27017 --dir /tmp/ferretdb-data
//
// It runs until SIGTERM or SIGINT, then closes the listener and the backend
// and exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	dir := flag.String("dir", "", "directory for the SQLite databases (created if missing; required)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	if *dir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ferretdb-test-server --listen HOST:PORT --dir DIR [--log-level LEVEL]")
		os.Exit(2)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test-server: bad --log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatal(err)
	}
	if err = os.MkdirAll(abs, 0o755); err != nil {
		fatal(err)
	}
	// FerretDB wants a directory URI that ends with a slash.
	url := "file:" + strings.TrimSuffix(abs, "/") + "/"

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: url,
	})
	if err != nil {
		fatal(err)
	}

	// The listener is bound by New; say so on stdout for whoever waits on us.
	fmt.Printf("ferretdb-test-server: listening on %s, data in %s\n", *listen, abs)

	if err = f.Run(ctx); err != nil {
		fatal(err)
	}
	fmt.Println("ferretdb-test-server: stopped")
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "ferretdb-test-server: %v\n", err)
	os.Exit(1)
}
