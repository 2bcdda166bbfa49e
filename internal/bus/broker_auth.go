package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfakeUsersFile is where kfake persists its SASL users in a data dir.
const kfakeUsersFile = "sasl.json"

// superuserCheckTimeout bounds the broker's check, at start, that its
// superuser can log in.
const superuserCheckTimeout = 10 * time.Second

// prepareAuth works out the superuser's credentials and returns the kfake
// options that turn on SASL and ACLs.
func (b *Broker) prepareAuth() ([]kfake.Opt, error) {
	if b.dataDir == "" {
		b.superuser = Credentials{Mechanism: MechanismSCRAMSHA256, User: SuperuserName, Password: RandomPassword()}
	} else {
		creds, created, err := LoadOrCreateCredentials(b.dataDir)
		if err != nil {
			return nil, err
		}
		b.superuser = creds
		b.credentialsCreated = created
		if err := b.reconcilePersistedUsers(created); err != nil {
			return nil, err
		}
		kcat := filepath.Join(b.dataDir, KcatConfigFileName)
		body := "# Written by weir at every start of the embedded broker: kcat -F " + kcat + " -L\n" +
			ClientProperties(creds, b.addr)
		if err := writeFileAtomic(kcat, []byte(body), true); err != nil {
			return nil, fmt.Errorf("kcat config: %w", err)
		}
		if created {
			b.log.Info("embedded broker: created the superuser's credentials", "user", creds.User, "file", filepath.Join(b.dataDir, CredentialsFileName))
		}
	}
	return []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser(b.superuser.Mechanism, b.superuser.User, b.superuser.Password),
		kfake.EnableACLs(),
	}, nil
}

// reconcilePersistedUsers handles the users kfake will load from the data
// dir, which replace the superuser given as an option. A users file
// without any user (left by a broker that ran without authentication)
// would lock everyone out, so it is removed and the superuser is seeded
// afresh. A users file whose users do not include the superuser means the
// credentials file was lost: that is an error for a person to resolve.
func (b *Broker) reconcilePersistedUsers(credentialsCreated bool) error {
	path := filepath.Join(b.dataDir, kfakeUsersFile)
	users, err := persistedUsers(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(users) == 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("users file %s: %w", path, err)
		}
		return nil
	}
	if !slices.Contains(users, b.superuser.User) {
		return fmt.Errorf("the broker's users %v do not include %s, the user of %s: %s",
			users, b.superuser.User, filepath.Join(b.dataDir, CredentialsFileName), b.credentialsHint(credentialsCreated))
	}
	return nil
}

// credentialsHint tells a person what to do when the credentials file
// does not match the users the broker persisted.
func (b *Broker) credentialsHint(created bool) string {
	users := filepath.Join(b.dataDir, kfakeUsersFile)
	if created {
		return fmt.Sprintf("the credentials file was missing and has just been created; put the old one back, or remove it and %s (every user is then dropped and the superuser created afresh)", users)
	}
	return fmt.Sprintf("put back the credentials file the broker was started with, or remove %s (every user is then dropped and the superuser created afresh)", users)
}

// persistedUsers lists the user names in kfake's users file: the keys of
// its per-mechanism maps. Only the file's shape (an object of objects keyed
// by user) is assumed, not its field names.
func persistedUsers(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	var users []string
	for _, raw := range top {
		var byUser map[string]json.RawMessage
		if json.Unmarshal(raw, &byUser) != nil {
			continue // the version number, or another scalar
		}
		for u := range byUser {
			if !slices.Contains(users, u) {
				users = append(users, u)
			}
		}
	}
	slices.Sort(users)
	return users, nil
}

// checkSuperuser logs in as the superuser and asks for metadata, so a
// credentials file that does not match the broker's persisted users fails
// the start instead of every client after it.
func (b *Broker) checkSuperuser() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.SASL(b.superuser.saslMechanism()),
		kgo.WithLogger(kgoLogger{b.log}))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), superuserCheckTimeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // none: only the login matters
	if _, err := req.RequestWith(ctx, cl); err != nil {
		if errors.Is(err, kerr.SaslAuthenticationFailed) && b.dataDir != "" {
			return fmt.Errorf("superuser %s of %s is refused by the broker's persisted users: %s (%w)",
				b.superuser.User, filepath.Join(b.dataDir, CredentialsFileName), b.credentialsHint(b.credentialsCreated), err)
		}
		return fmt.Errorf("superuser %s cannot log in: %w", b.superuser.User, err)
	}
	return nil
}
