package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLDAPSection(t *testing.T) {
	pub := `ldap: stoney
	server ldaps://ldap1.example.com
	server ldaps://ldap2.example.com:636
	ca-file /etc/herald/ldap-ca.pem
	bind-dn cn=herald,ou=services,dc=example,dc=com
	base-dn ou=accounts,ou=backup,dc=example,dc=com
	person-base-dn ou=people,dc=example,dc=com
	cache-time 5m

ldap: other
	server ldap://127.0.0.1:3890
	starttls true
	base-dn dc=other,dc=example
	account-filter (&(objectClass=inetOrgPerson)(employeeNumber={id}))
	warning-attribute notify
	medium-attribute channel
	owner-attribute manager
	mail-attribute rfc822Mailbox
	timeout 3s

ldap: off
	server ldap://127.0.0.1:3891
	base-dn dc=off,dc=example
	disable true

sendmail: owners
	mailto root
	mailto-field account

smtp: relay
	server mail.example.com
	from-address herald@example.com
	mailto-field backup-account
`
	priv := "ldap: stoney\n\tbind-password s3cr3t-bind-pw\n"
	cfg, err := Parse("notifications.cfg", []byte(pub), "notifications-priv.cfg", []byte(priv), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.LDAP) != 2 {
		t.Fatalf("LDAP sections: %d, want 2", len(cfg.LDAP))
	}
	s, o := cfg.LDAP[0], cfg.LDAP[1]
	if s.Name != "stoney" || !slices.Equal(s.Servers, []string{"ldaps://ldap1.example.com", "ldaps://ldap2.example.com:636"}) ||
		s.BindPassword.Reveal() != "s3cr3t-bind-pw" || s.CacheTime != 5*time.Minute || s.StaleTime != DefaultLDAPStaleTime ||
		s.AccountFilter != DefaultLDAPFilter || s.WarningAttr != "sstBackupWarningOn" || s.MediumAttr != "sstNotificationWarningMedium" ||
		s.OwnerAttr != "sstBelongsToPersonUID" || s.MailAttr != "mail" || s.Timeout != DefaultLDAPTimeout ||
		!slices.Equal(s.PersonBaseDNs, []string{"ou=people,dc=example,dc=com"}) {
		t.Errorf("stoney = %+v", s)
	}
	if !o.StartTLS || o.MailAttr != "rfc822Mailbox" || o.OwnerAttr != "manager" || o.Timeout != 3*time.Second ||
		!slices.Equal(o.PersonBaseDNs, o.BaseDNs) || !o.BindPassword.IsEmpty() {
		t.Errorf("other = %+v", o)
	}
	if v, _ := cfg.Target("owners").Get(MailtoFieldKey); v != "account" {
		t.Errorf("owners mailto-field = %q", v)
	}
	// The password shows in no printed form of the configuration.
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(js), fmt.Sprintf("%+v %#v %v", s, s, cfg.LDAP)} {
		if strings.Contains(out, "s3cr3t-bind-pw") {
			t.Fatalf("bind password printed: %s", out)
		}
	}
}
