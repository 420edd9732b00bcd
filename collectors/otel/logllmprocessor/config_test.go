package logllmprocessor

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	id := component.MustNewIDWithName(typeStr, strings.TrimPrefix(strings.TrimPrefix(name, typeStr), "/"))
	if name == typeStr {
		id = component.NewID(Type)
	}
	sub, err := cm.Sub(id.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestDefaultsAreTheDocumentedOnes(t *testing.T) {
	cfg, err := loadConfig(t, "logllm")
	if err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	want := createDefaultConfig().(*Config)
	if cfg.Endpoint != "localhost:50051" || cfg.Timeout != 2*time.Second || cfg.MaxLines != 15 ||
		cfg.MinLines != 6 || cfg.IdleTimeout != 2*time.Second || cfg.MaxAge != 30*time.Second ||
		cfg.LatencyBudget != 5*time.Second || len(cfg.KeyAttributes) != 2 || cfg.KeyAttributes[0] != "service.name" || cfg.KeyAttributes[1] != "host.name" ||
		cfg.MaxHeldRecords != want.MaxHeldRecords || !cfg.TLS.Insecure {
		t.Fatalf("defaults differ from the documented ones: %+v", cfg)
	}
}

func TestCustomConfigIsRead(t *testing.T) {
	cfg, err := loadConfig(t, "logllm/custom")
	if err != nil {
		t.Fatalf("custom config invalid: %v", err)
	}
	if cfg.Endpoint != "logllm.internal:50051" || cfg.TLS.Insecure || cfg.TLS.CAFile != "/etc/logllm/ca.pem" ||
		cfg.BearerTokenFile != "/etc/logllm/token" || cfg.Timeout != time.Second || cfg.MaxLines != 20 ||
		cfg.MinLines != 4 || cfg.IdleTimeout != time.Second || cfg.MaxAge != 10*time.Second ||
		cfg.LatencyBudget != 3*time.Second || cfg.MaxHeldRecords != 5000 ||
		strings.Join(cfg.KeyAttributes, ",") != "service.name,host.name" {
		t.Fatalf("custom config not read as written: %+v", cfg)
	}
	idle, age := cfg.holdLimits()
	if idle != time.Second || age != 1500*time.Millisecond {
		t.Fatalf("hold limits must be capped at half the latency budget: idle %v age %v", idle, age)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	for name, key := range map[string]string{
		"logllm/lines":    "max_lines",
		"logllm/unknown":  "max_line",
		"logllm/endpoint": "endpoint",
		"logllm/budget":   "latency_budget",
	} {
		_, err := loadConfig(t, name)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error does not name %q: %v", name, key, err)
		}
	}
}

func TestValidateEveryKey(t *testing.T) {
	cases := map[string]func(*Config){
		"timeout":          func(c *Config) { c.Timeout = 0 },
		"key_attributes":   func(c *Config) { c.KeyAttributes = nil },
		"min_lines":        func(c *Config) { c.MinLines = 0 },
		"idle_timeout":     func(c *Config) { c.IdleTimeout = -time.Second },
		"max_age":          func(c *Config) { c.MaxAge = 0 },
		"max_held_records": func(c *Config) { c.MaxHeldRecords = 0 },
		"endpoint":         func(c *Config) { c.Endpoint = "http://localhost:50051" },
	}
	for key, breakIt := range cases {
		cfg := createDefaultConfig().(*Config)
		breakIt(cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), key+":") {
			t.Errorf("%s: want an error starting %q, got %v", key, key+":", err)
		}
	}
	if err := createDefaultConfig().(*Config).Validate(); err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
}
