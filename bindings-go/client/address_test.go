package client

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Config → polylock URL: go-ldlm's fields become the LDLM URL's password
// and options; what does not apply is an error that never shows the
// password.
func TestConfigToURL(t *testing.T) {
	const secret = "p@ss:/+ %wörd"
	for _, c := range []struct {
		conf Config
		url  string
	}{
		{Config{Address: "localhost:3144"}, "ldlm://localhost:3144"},
		{Config{Address: "[::1]:3144", MaxRetries: 5}, "ldlm://[::1]:3144?max_retries=5"},
		{Config{Address: "h:1", UseTls: true, CAFile: "/c/ca.pem"}, "ldlms://h:1?ca=%2Fc%2Fca.pem"},
		{Config{Address: "h:1", TlsCert: "c.pem", TlsKey: "k.pem"}, "ldlms://h:1?cert=c.pem&key=k.pem"},
		{Config{Address: "h:1", UseTls: true, SkipVerify: true}, "ldlms://h:1?skip_verify=true"},
		{Config{Address: "ldlm://h:1?keepalive=20s", UseTls: true, CAFile: "ca"}, "ldlms://h:1?ca=ca&keepalive=20s"},
		{Config{Address: "ldlms://h:1", CAFile: "ca"}, "ldlms://h:1?ca=ca"},
		{Config{Address: "consul://127.0.0.1:8500"}, "consul://127.0.0.1:8500"},
		{Config{Address: "memory://x", NoAutoRenew: true}, "memory://x"},
	} {
		got, err := polylockURL(c.conf)
		if err != nil || got != c.url {
			t.Errorf("%+v: %q %v, want %q", c.conf, got, err, c.url)
		}
	}
	got, err := polylockURL(Config{Address: "h:1", Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil || u.User.Username() != "" {
		t.Fatalf("%v %v", u, err)
	}
	if password, _ := u.User.Password(); password != secret {
		t.Fatalf("the password came through as %q", password)
	}
	for _, bad := range []Config{
		{},
		{Address: "h:1", MaxRetries: -1},
		{Address: "h:1", TlsCert: "c.pem"},
		{Address: "h:1", TlsKey: "k.pem"},
		{Address: "h:1", CAFile: "ca.pem"},
		{Address: "h:1", SkipVerify: true},
		{Address: "h/x:1", Password: secret},
		{Address: "consul://h:1", Password: secret},
		{Address: "mongodb://h:1", UseTls: true},
		{Address: "memory://", MaxRetries: 2},
		{Address: "ldlm://:other@h:1", Password: secret},
		{Address: "ldlms://h:1?ca=a", CAFile: "b"},
	} {
		_, err := polylockURL(bad)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", bad, err)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// Config's String, %v, %+v and %#v never show the password.
func TestConfigStringHidesThePassword(t *testing.T) {
	conf := Config{Address: "h:1", Password: "hunter2-secret"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if shown := fmt.Sprintf(format, conf); strings.Contains(shown, "hunter2") || !strings.Contains(shown, "h:1") {
			t.Errorf("%s: %s", format, shown)
		}
	}
}
