package logllmprocessor // import "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
)

// Config of the logllm processor. Keys and defaults follow the Python SDK processor
// (collectors/otel/processor.py) so one set of numbers describes both.
type Config struct {
	// Endpoint of the logllm-plugin inference server (`logllm-plugin serve`), host:port.
	Endpoint string `mapstructure:"endpoint"`
	// TLS client settings (configtls). Insecure (plaintext) by default, like the server's default.
	TLS configtls.ClientConfig `mapstructure:"tls"`
	// Auth names a client authenticator extension (e.g. bearertokenauth) through configauth.
	Auth configoptional.Optional[configauth.Config] `mapstructure:"auth"`
	// BearerTokenFile: a file holding the server's token, sent as `authorization: Bearer <token>`.
	// Re-read when it changes, so a rotated token is picked up without a restart.
	BearerTokenFile string `mapstructure:"bearer_token_file"`
	// Timeout of one Detect call (further bounded by what is left of the latency budget).
	Timeout time.Duration `mapstructure:"timeout"`
	// KeyAttributes: record attributes, then resource attributes, that group records into
	// sequences. A record's trace id, when it has one, comes first and alone.
	KeyAttributes []string `mapstructure:"key_attributes"`
	// MaxLines closes a sequence at this many records.
	MaxLines int `mapstructure:"max_lines"`
	// MinLines: sequences that close shorter are still scored and passed on, never dropped.
	MinLines int `mapstructure:"min_lines"`
	// IdleTimeout closes a sequence this long after its last record.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxAge closes a sequence this long after its first record.
	MaxAge time.Duration `mapstructure:"max_age"`
	// LatencyBudget: no record is held longer. Half of it may go to waiting for more lines
	// (idle_timeout and max_age are capped at half), the rest to scoring.
	LatencyBudget time.Duration `mapstructure:"latency_budget"`
	// MaxHeldRecords bounds memory: a batch that would take the processor past it passes on at
	// once, unannotated, with logllm.status=rejected.
	MaxHeldRecords int `mapstructure:"max_held_records"`

	_ struct{}
}

var _ component.Config = (*Config)(nil)

func createDefaultConfig() component.Config {
	tls := configtls.NewDefaultClientConfig()
	tls.Insecure = true
	return &Config{
		Endpoint:       "localhost:50051",
		TLS:            tls,
		Auth:           configoptional.None[configauth.Config](),
		Timeout:        2 * time.Second,
		KeyAttributes:  []string{"service.name", "host.name"}, // as the Python sequencer: replicas apart
		MaxLines:       15,
		MinLines:       6,
		IdleTimeout:    2 * time.Second,
		MaxAge:         30 * time.Second,
		LatencyBudget:  5 * time.Second,
		MaxHeldRecords: 100_000,
	}
}

// Validate names the key at fault, so the collector refuses to start with a message a user can act on.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if err := validateEndpoint(c.Endpoint); err != nil {
		bad("endpoint", "%v", err)
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be > 0, got %v", c.Timeout)
	}
	if len(c.KeyAttributes) == 0 {
		bad("key_attributes", "must name at least one attribute")
	}
	for i, name := range c.KeyAttributes {
		if strings.TrimSpace(name) == "" {
			bad("key_attributes", "entry %d is empty", i)
		}
	}
	if c.MaxLines < 1 {
		bad("max_lines", "must be >= 1, got %d", c.MaxLines)
	}
	if c.MinLines < 1 {
		bad("min_lines", "must be >= 1, got %d", c.MinLines)
	}
	if c.MinLines > c.MaxLines && c.MaxLines >= 1 {
		bad("max_lines", "(%d) must not be less than min_lines (%d)", c.MaxLines, c.MinLines)
	}
	if c.IdleTimeout <= 0 {
		bad("idle_timeout", "must be > 0, got %v", c.IdleTimeout)
	}
	if c.MaxAge <= 0 {
		bad("max_age", "must be > 0, got %v", c.MaxAge)
	}
	if c.LatencyBudget <= 0 {
		bad("latency_budget", "must be > 0, got %v", c.LatencyBudget)
	}
	if c.MaxHeldRecords < 1 {
		bad("max_held_records", "must be >= 1, got %d", c.MaxHeldRecords)
	}
	if c.Auth.HasValue() && c.BearerTokenFile != "" {
		bad("bearer_token_file", "give either auth (an authenticator extension) or bearer_token_file, not both")
	}
	return errors.Join(errs...)
}

func validateEndpoint(endpoint string) error {
	if endpoint == "" {
		return errors.New("must be host:port, got an empty string")
	}
	if strings.Contains(endpoint, "://") {
		return fmt.Errorf("must be host:port without a scheme, got %q", endpoint)
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q (%v)", endpoint, err)
	}
	if host == "" {
		return fmt.Errorf("must name a host, got %q", endpoint)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be 1-65535, got %q", port)
	}
	return nil
}

// holdLimits: how long a sequence may wait for more lines, capped at half the latency budget
// so the other half is left for scoring (as in the Python processor).
func (c *Config) holdLimits() (idle, maxAge time.Duration) {
	half := c.LatencyBudget / 2
	return min(c.IdleTimeout, half), min(c.MaxAge, half)
}

// grpcClientConfig: the collector's standard gRPC client settings built from our keys, so TLS
// and authenticator extensions work exactly as for the collector's own exporters.
func (c *Config) grpcClientConfig() configgrpc.ClientConfig {
	cc := configgrpc.NewDefaultClientConfig()
	cc.Endpoint = c.Endpoint
	cc.TLS = c.TLS
	cc.Auth = c.Auth
	return cc
}
