package client

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// polylockURL is the polylock URL a Config names. A "host:port" Address is
// an LDLM server: ldlm://host:port, or ldlms:// when UseTls or TlsCert is
// set (as go-ldlm, which uses TLS for either), with Password as the URL's
// password and the TLS files and MaxRetries as the URL's options. An
// Address with a scheme is a polylock URL: ldlm:// and ldlms:// take the
// same Config fields (a setting given both ways is refused); any other
// backend's URL takes none of them (its own options go in its URL).
// Errors never show the password.
func polylockURL(conf Config) (string, error) {
	if conf.Address == "" {
		return "", fmt.Errorf("%w: Config.Address is empty (host:port of an LDLM server, or a polylock URL)", ErrConfig)
	}
	if conf.MaxRetries < 0 {
		return "", fmt.Errorf("%w: Config.MaxRetries must not be negative, got %d", ErrConfig, conf.MaxRetries)
	}
	if (conf.TlsCert == "") != (conf.TlsKey == "") {
		return "", fmt.Errorf("%w: Config.TlsCert and Config.TlsKey go together (a client certificate and its key)", ErrConfig)
	}
	scheme, _, hasScheme := strings.Cut(conf.Address, "://")
	tls := conf.UseTls || conf.TlsCert != "" || scheme == "ldlms"
	if (!hasScheme || scheme == "ldlm" || scheme == "ldlms") && !tls && (conf.CAFile != "" || conf.SkipVerify) {
		return "", fmt.Errorf("%w: Config.CAFile and Config.SkipVerify are TLS settings: set Config.UseTls", ErrConfig)
	}
	if !hasScheme {
		u := &url.URL{Scheme: "ldlm", Host: conf.Address}
		if tls {
			u.Scheme = "ldlms"
		}
		if strings.ContainsAny(conf.Address, "/?#@") {
			return "", fmt.Errorf("%w: Config.Address %q is not host:port (nor a URL with a scheme)", ErrConfig, conf.Address)
		}
		if conf.Password != "" {
			u.User = url.UserPassword("", conf.Password)
		}
		u.RawQuery = ldlmOptions(conf).Encode()
		return u.String(), nil
	}
	switch scheme {
	case "ldlm", "ldlms":
		return mergeLDLM(conf, tls)
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"Password", conf.Password != ""}, {"UseTls", conf.UseTls}, {"SkipVerify", conf.SkipVerify},
		{"CAFile", conf.CAFile != ""}, {"TlsCert", conf.TlsCert != ""}, {"MaxRetries", conf.MaxRetries != 0},
	} {
		if f.set {
			return "", fmt.Errorf("%w: Config.%s is an LDLM setting; a %s:// address takes its backend's own options in the URL", ErrConfig, f.name, scheme)
		}
	}
	return conf.Address, nil
}

// ldlmOptions are the LDLM URL options Config sets.
func ldlmOptions(conf Config) url.Values {
	q := url.Values{}
	if conf.CAFile != "" {
		q.Set("ca", conf.CAFile)
	}
	if conf.TlsCert != "" {
		q.Set("cert", conf.TlsCert)
		q.Set("key", conf.TlsKey)
	}
	if conf.SkipVerify {
		q.Set("skip_verify", "true")
	}
	if conf.MaxRetries > 0 {
		q.Set("max_retries", strconv.Itoa(conf.MaxRetries))
	}
	return q
}

// mergeLDLM adds Config's LDLM settings to an ldlm:// or ldlms:// Address.
func mergeLDLM(conf Config, tls bool) (string, error) {
	u, err := url.Parse(conf.Address)
	if err != nil {
		// url's errors quote the URL, password included.
		return "", fmt.Errorf("%w: Config.Address is not a valid URL", ErrConfig)
	}
	if tls {
		u.Scheme = "ldlms"
	}
	if conf.Password != "" {
		if u.User != nil {
			return "", fmt.Errorf("%w: the password is given both in Config.Address and in Config.Password", ErrConfig)
		}
		u.User = url.UserPassword("", conf.Password)
	}
	q := u.Query()
	for name, values := range ldlmOptions(conf) {
		if q.Has(name) {
			return "", fmt.Errorf("%w: the LDLM option %s is given both in Config.Address and in Config", ErrConfig, name)
		}
		q[name] = values
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
